"""Forgetting a user, end to end on the real chDB engine (and over HTTP): raw calls, every rollup, captured
content, tables other rooms add, the spool of a process that died, the quarantine, and the audit."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger import ConfigError, CostExporter, Ledger, Store, UnknownIdError
from spanledger._ingest import codec
from spanledger._ingest.quarantine import Quarantine
from spanledger._ingest.spool import Spool
from spanledger._privacy import forget as forget_module
from spanledger._privacy import store as privacy_store
from spanledger._privacy.forget import forget
from spanledger._store.schema import ROLLUP_TABLES
from spanledger.testing import BASE_TIME, llm_call, llm_span

pytestmark = pytest.mark.integration

KEY = "forget-test-key-0123456789"
USERS = ("alice", "bob", "carol", "dan")
TENANTS = ("acme", "globex")
HOUR_NS = 3600 * 10**9
_BASE_NS = int(BASE_TIME.timestamp()) * 10**9


def spans(count: int = 240) -> list[object]:
    """Calls over ~50 days (two month partitions); alice is in both tenants; content mentions the caller."""
    out = []
    for n in range(count):
        user = USERS[n % len(USERS)]
        out.append(
            llm_span(
                n,
                user=user,
                tenant=TENANTS[(n // 4) % 2],
                start_ns=_BASE_NS + n * 5 * HOUR_NS,
                input_tokens=1000 + n,
                extra={
                    "gen_ai.input.messages": f"I am {user}, mail me at {user}@example.com",
                    "gen_ai.output.messages": f"Hello {user}",
                },
                tags={"plan": "pro" if n % 3 else "free"},
            )
        )
    return out


def seed(store: Store, spool: Path) -> None:
    exporter = CostExporter(store, spool_dir=spool, capture_content=True, redact=False)
    exporter.export(spans())
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    db = store.database
    # tables other rooms add (budgets and their alert state, a customer profile), unknown to forget
    store.command(
        f"CREATE TABLE {db}.budget_state (tenant_id String, user_id String, spent Decimal(38, 12)) "
        "ENGINE = ReplacingMergeTree ORDER BY (tenant_id, user_id)"
    )
    store.command(f"INSERT INTO {db}.budget_state VALUES ('acme', 'alice', 1.5), ('acme', 'bob', 2)")
    store.command(
        f"CREATE TABLE {db}.alert_events (at DateTime, user_id String, message String) ENGINE = MergeTree ORDER BY at"
    )
    store.command(f"INSERT INTO {db}.alert_events VALUES (now(), 'alice', 'over budget'), (now(), 'carol', 'x')")


def dead_process_spool(root: Path, user: str) -> None:
    """Calls a process accepted and never inserted before it died: a sealed segment and an active file."""
    spool = Spool(root, max_bytes=1 << 30)
    for first in (5000, 5010):
        calls = [llm_call(first + i, user=user if i % 2 else "zed", tenant="acme") for i in range(4)]
        spool.append(codec.encode(codec.to_columns(calls)))
        if first == 5000:
            spool.seal()
    import fcntl
    import os

    fcntl.flock(spool._lock_fd, fcntl.LOCK_UN)  # the process is gone: its lock is free, its files remain
    os.close(spool._lock_fd)


def holding(store: Store, needle: str) -> dict[str, int]:
    """Every table of the database whose rows contain ``needle`` anywhere, with how many rows do."""
    db = store.database
    found = {}
    for (table,) in store.query(
        f"SELECT name FROM system.tables WHERE database = '{db}' AND engine NOT LIKE '%View'"
    ).result_rows:
        n = store.query(
            f"SELECT count() FROM {db}.{table} WHERE position(formatRow('TSV', *), {{n:String}}) > 0", {"n": needle}
        ).result_rows[0][0]
        if n:
            found[table] = int(n)
    return found


def files_holding(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def tenant_costs(ledger: Ledger) -> dict[str, Decimal]:
    return {row.tenant_id: row.usage.cost for row in ledger.tenants(limit=100).rows}


def spend_by_tenant(ledger: Ledger, user: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for row in ledger.users(limit=100, search=user).rows:
        if row.user_id == user:
            out[row.tenant_id] = out.get(row.tenant_id, Decimal(0)) + row.usage.cost
    return out


def test_forget_deletes_a_user_everywhere_and_tenant_totals_drop_by_exactly_their_spend(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    seed(store, spool)
    dead_process_spool(spool, "alice")
    Quarantine(spool).put(codec.to_columns([llm_call(7000, user="alice"), llm_call(7001, user="bob")]),
                          reason="store_rejected", error="test", source="test")  # fmt: skip
    ledger = Ledger(store)
    before, theirs = tenant_costs(ledger), spend_by_tenant(ledger, "alice")
    assert set(theirs) == {"acme", "globex"} and holding(store, "alice")
    assert files_holding(spool, "alice")

    with caplog.at_level(logging.DEBUG):
        report = forget(store, "alice", key=KEY, spool_dir=spool)

    assert report.verified and not report.already_forgotten
    assert report.rows["llm_calls"] == 60 and report.rows["budget_state"] == 1 and report.rows["alert_events"] == 1
    assert report.spool_calls == 4 + 1  # two in the dead process's spool files, ... and one quarantined
    assert set(report.rows) >= {"usage_by_user_hourly", "usage_by_user_daily"}
    assert holding(store, "alice") == {}  # no table holds the id, in any column
    commands = store.query(
        "SELECT command FROM system.mutations WHERE database = {db:String}", {"db": store.database}
    ).result_rows
    assert commands and not [c for (c,) in commands if "alice" in c]  # nor the mutations' records
    assert files_holding(spool, "alice") == []  # nor any spool or quarantine file
    assert "alice" not in caplog.text
    after = tenant_costs(ledger)
    assert {t: before[t] - after[t] for t in before} == theirs  # exactly the user's spend, per tenant
    assert ledger.user("alice").summary is None
    # the others are whole: bob's budget row, carol's alert, the dead process's other calls, zed's quarantine
    assert holding(store, "bob").get("budget_state") == 1 and holding(store, "carol").get("alert_events") == 1
    assert len(files_holding(spool, "zed")) == 2 and files_holding(spool, "bob")

    audit = privacy_store.audit(store)
    assert [a["state"] for a in audit] == ["started", "done"]
    assert {a["id_hash"] for a in audit} == {report.id_hash} and audit[1]["rows"] == report.total_rows
    assert holding(store, report.id_hash) == {"privacy_audit": 2}

    again = forget(store, "alice", key=KEY, spool_dir=spool)  # a second run is a no-op
    assert again.already_forgotten and again.total_rows == 0
    assert len(privacy_store.audit(store)) == 2 and tenant_costs(ledger) == after


def test_bad_input_changes_nothing(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(store, tmp_path / "spool")
    ledger = Ledger(store)
    before = tenant_costs(ledger)
    with pytest.raises(UnknownIdError, match="nothing was changed"):
        forget(store, "mallory", key=KEY, spool_dir=tmp_path / "spool")
    with pytest.raises(ConfigError, match="SPANLEDGER_ID_KEY"):
        forget(store, "alice", spool_dir=tmp_path / "spool")  # no key: no audit record could be written
    with pytest.raises(ConfigError, match="mode"):
        forget(store, "alice", key=KEY, mode="shred")
    with pytest.raises(ConfigError, match="user id"):
        forget(store, "  ", key=KEY)
    store.command(f"CREATE TABLE {store.database}.profiles_log (user_id String) ENGINE = Log")
    with pytest.raises(ConfigError, match="profiles_log"):
        forget(store, "alice", key=KEY)
    assert tenant_costs(ledger) == before and privacy_store.audit(store) == []
    assert holding(store, "alice")["llm_calls"] == 60


def test_forget_in_one_tenant_leaves_the_users_other_tenant(store: Store, tmp_path: Path) -> None:
    seed(store, tmp_path / "spool")
    ledger = Ledger(store)
    before, theirs = tenant_costs(ledger), spend_by_tenant(ledger, "alice")
    report = forget(store, "alice", tenant="globex", key=KEY, spool_dir=tmp_path / "spool")
    assert report.verified and report.tenant == "globex"
    after = tenant_costs(ledger)
    assert before["globex"] - after["globex"] == theirs["globex"] and after["acme"] == before["acme"]
    assert spend_by_tenant(ledger, "alice") == {"acme": theirs["acme"]}
    assert holding(store, "alice")["budget_state"] == 1  # the acme budget row stays


def test_anonymize_keeps_every_total_and_leaves_no_id_nor_content(store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    seed(store, spool)
    dead_process_spool(spool, "alice")
    ledger = Ledger(store)
    overview_before, before = ledger.overview(), tenant_costs(ledger)
    spent = sum(spend_by_tenant(ledger, "alice").values(), Decimal(0))

    report = forget(store, "alice", key=KEY, mode="anonymize", spool_dir=spool)

    assert report.verified and report.rewritten_rows > 0
    assert holding(store, "alice") == {} and files_holding(spool, "alice") == []
    assert tenant_costs(ledger) == before
    after = ledger.overview()
    assert (after.totals, after.daily) == (overview_before.totals, overview_before.daily)
    (pseudonym,) = {r.user_id for r in ledger.users(limit=100).rows if r.user_id.startswith("anon_")}
    assert sum((r.usage.cost for r in ledger.users(limit=100).rows if r.user_id == pseudonym), Decimal(0)) == spent
    db = store.database
    content = store.query(
        f"SELECT countIf(prompt != '' OR completion != '') FROM {db}.llm_calls WHERE user_id = {{p:String}}",
        {"p": pseudonym},
    ).result_rows[0][0]
    assert content == 0  # prompts name the person: gone
    assert holding(store, pseudonym)["budget_state"] == 1 and len(files_holding(spool, pseudonym)) == 2
    assert holding(store, pseudonym).get("privacy_jobs") is None  # nothing links the hash to the pseudonym
    assert forget(store, "alice", key=KEY, mode="anonymize", spool_dir=spool).already_forgotten


def test_an_anonymization_cut_short_finishes_with_the_same_pseudonym(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(store, tmp_path / "spool")
    ledger = Ledger(store)
    before = tenant_costs(ledger)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed half-way")

    monkeypatch.setattr(forget_module, "rebuild", crash)
    with pytest.raises(RuntimeError):
        forget(store, "alice", key=KEY, mode="anonymize", spool_dir=tmp_path / "spool")
    assert tenant_costs(ledger) == before  # the raw rows were swapped whole; totals never doubled
    pending = store.query(f"SELECT pseudonym FROM {store.database}.privacy_jobs").result_rows
    assert len(pending) == 1
    monkeypatch.undo()

    report = forget(store, "alice", key=KEY, mode="anonymize", spool_dir=tmp_path / "spool")
    assert report.verified
    assert {r.user_id for r in ledger.users(limit=100).rows if r.user_id.startswith("anon_")} == {pending[0][0]}
    assert tenant_costs(ledger) == before and holding(store, "alice") == {}
    assert store.query(f"SELECT count() FROM {store.database}.privacy_jobs").result_rows[0][0] == 0


def test_forget_works_over_http_with_rollups_equal_to_the_raw_table(http_store_dsn: str, tmp_path: Path) -> None:
    store = Store(http_store_dsn)
    seed(store, tmp_path / "spool")
    ledger = Ledger(store)
    before, theirs = tenant_costs(ledger), spend_by_tenant(ledger, "bob")
    report = forget(store, "bob", key=KEY, spool_dir=tmp_path / "spool", grace_seconds=0, wait_seconds=0)
    assert report.verified and holding(store, "bob") == {}
    after = tenant_costs(ledger)
    assert {t: before[t] - after[t] for t in theirs} == theirs
    from tests.integration.test_rebuild import rollups_match_raw

    assert rollups_match_raw(store) == dict.fromkeys(ROLLUP_TABLES, True)
    store.close()


def test_calls_waiting_in_this_process_s_spool_are_forgotten_before_they_are_inserted(
    store: Store, tmp_path: Path
) -> None:
    from spanledger._store import lease

    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    exporter.export([llm_span(n, user="alice" if n % 2 else "bob") for n in range(10)])
    assert exporter.force_flush(30_000)
    lease.take(store, seconds=600)  # a rebuild elsewhere holds the inserts: new calls wait in the spool
    try:
        exporter.export([llm_span(n, user="alice" if n % 2 else "bob") for n in range(10, 20)])
        exporter.force_flush(2_000)
        assert files_holding(tmp_path / "spool", "alice")
        report = Ledger(store).forget("alice", key=KEY)  # finds the running pipeline of this process
    finally:
        lease.release(store)
    assert report.verified and report.spool_calls == 5 and report.rows["llm_calls"] == 5
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    assert holding(store, "alice") == {} and files_holding(tmp_path / "spool", "alice") == []
    assert Ledger(store).user("bob").summary.usage.requests == 10  # type: ignore[union-attr]


def test_forgetting_the_only_user_of_a_month_empties_its_partitions(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    exporter.export([llm_span(n, user="solo", start_ns=_BASE_NS - 40 * 24 * HOUR_NS + n * HOUR_NS) for n in range(5)])
    exporter.export([llm_span(n, user="bob") for n in range(5, 10)])
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    report = forget(store, "solo", key=KEY, spool_dir=tmp_path / "spool")
    assert report.verified and holding(store, "solo") == {}
    assert tenant_costs(Ledger(store)) == {"acme": Decimal("0.0001212") * 5}
