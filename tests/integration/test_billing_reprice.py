"""Repricing on real chDB: the dry run reports what the real run does; edges that cut an hour and a day; a
rule for a model nobody knew; a second run changes nothing; inserts during a repricing are neither lost
nor counted twice; the rollups equal a GROUP BY over llm_calls afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spanledger import CostExporter, Ledger, Store
from spanledger._billing import records
from spanledger._billing.billing import Billing
from spanledger._store import lease
from spanledger._store.schema import RAW_TABLE
from tests.integration.billing_support import call, rollups_match_raw, store_calls

pytestmark = pytest.mark.integration

PRICES = """
[[prices]]
name = "house"
provider = "acme-ai"
model = "house-model-*"
input_mtok = "3"
output_mtok = "15"

[[prices]]
name = "gpt-4o-deal"
provider = "openai"
model = "gpt-4o"
multiplier = "0.5"
"""
FIRST = datetime(2026, 11, 3, tzinfo=UTC)
START = datetime(2026, 11, 5, 13, 47, 12, 345678, tzinfo=UTC)  # cuts an hour and a day
END = datetime(2026, 11, 12, 6, 20, 0, 1, tzinfo=UTC)


def spans(count: int, first: datetime = FIRST, *, step: timedelta = timedelta(minutes=97)) -> list[Any]:
    out = []
    for n in range(count):
        model = (("acme-ai", "house-model-1"), ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"))[n % 3]
        out.append(
            call(
                first + step * n,
                user=f"u{n % 4}",
                tenant=f"t{n % 2}",
                provider=model[0],
                model=model[1],
                input_tokens=1000 + n,
                cache_read=0,
                output_tokens=10 + n % 7,
            )
        )
    return out


def snapshot(store: Store) -> dict[tuple[int, int], tuple[Any, ...]]:
    rows = store.query(
        f"SELECT trace_id, span_id, timestamp, cost, input_cost, output_cost, price_source, price_model, flags "
        f"FROM {store.database}.{RAW_TABLE}"
    ).result_rows
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def comparable(report: Any) -> dict[str, Any]:
    record = records.record(report)
    for key in ("dry_run", "verified", "seconds", "phases"):
        record.pop(key)
    return record


@pytest.fixture
def price_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES)
    return path


def test_the_dry_run_is_the_real_run_and_a_second_run_changes_nothing(
    store: Store, tmp_path: Path, price_file: Path
) -> None:
    store_calls(store, spans(200), tmp_path)  # 200 calls, 97 minutes apart: Nov 3 to Nov 16
    before = snapshot(store)
    billing = Billing(store)
    dry = billing.reprice(start=START, end=END, price_file=price_file, dry_run=True)
    assert snapshot(store) == before and rollups_match_raw(store)  # the dry run wrote nothing
    real = billing.reprice(start=START, end=END, price_file=price_file, grace_seconds=0)
    assert comparable(dry) == comparable(real)
    assert real.verified is True and dry.verified is None

    after = snapshot(store)
    inside = {k for k, v in before.items() if START <= v[0].replace(tzinfo=UTC) < END}
    assert len(inside) == real.calls and {k for k in before if before[k] != after[k]} <= inside
    house = [k for k in inside if before[k][4] == "" and after[k][5] == "house-model-1"]
    deal = [k for k in inside if after[k][4] == "override:prices.toml#gpt-4o-deal"]
    assert len(house) + len(deal) == real.changed == len({k for k in inside if before[k] != after[k]})
    assert real.newly_priced == len(house) > 0 and len(deal) > 0 and real.kept == 0
    for key in house:  # a rule for a model nobody priced: priced now, saying which rule did it
        cost, input_cost, output_cost, source, _model, flags = after[key][1:]
        assert source == "override:prices.toml#house" and "repriced" in flags and "unpriced" not in flags
        assert cost == input_cost + output_cost and input_cost * 10**6 % 3 == 0
    for key in deal:
        assert after[key][1] == before[key][1] / 2 and "repriced" in after[key][6]
    assert (
        real.after - real.before
        == sum((after[k][1] - (before[k][1] or 0) for k in inside), Decimal(0))
        == sum((c.difference for c in real.tenants), Decimal(0))
        == sum((c.difference for c in real.users), Decimal(0))
    )
    assert rollups_match_raw(store)  # the rollups were rebuilt: equal to llm_calls again
    assert Ledger(store).totals(start=START, end=END).usage.cost == real.after
    assert Ledger(store).totals(start=START, end=END).usage.unpriced_requests == 0
    assert real.days[0] == "2026-11-05" and real.days[-1] == "2026-11-12"

    mutations = store.query(f"SELECT count() FROM system.mutations WHERE database = '{store.database}'").result_rows
    again = billing.reprice(start=START, end=END, price_file=price_file, grace_seconds=0)
    assert (again.calls, again.changed, again.newly_priced, again.tenants) == (real.calls, 0, 0, [])
    assert snapshot(store) == after
    assert (
        store.query(f"SELECT count() FROM system.mutations WHERE database = '{store.database}'").result_rows
        == mutations
    )
    assert lease.held(store) is None


def test_a_priced_call_with_no_price_now_is_kept_and_filters_narrow_it(
    store: Store, tmp_path: Path, price_file: Path
) -> None:
    store_calls(store, spans(60), tmp_path, price_file=str(price_file))  # priced by the file when stored
    before = snapshot(store)
    report = Billing(store).reprice(start=FIRST, end=END, grace_seconds=0)  # the catalog alone: no house price
    assert report.kept == 20 and report.changed == 20  # the house calls kept; gpt-4o back to the catalog's price
    after = snapshot(store)
    assert all(after[k] == v for k, v in before.items() if v[5] == "house-model-1")
    only = Billing(store).reprice(start=FIRST, end=END, model="gpt-4o", price_file=price_file, dry_run=True)
    assert (only.calls, only.changed, only.kept) == (20, 20, 0)
    assert rollups_match_raw(store)


def test_inserts_during_a_reprice_are_neither_lost_nor_counted_twice(
    store: Store, tmp_path: Path, price_file: Path
) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=20)  # no price file: unpriced
    exporter.export(spans(150, step=timedelta(minutes=60)))
    assert exporter.force_flush(30_000)
    stop, sent = threading.Event(), [150]

    def keep_writing() -> None:
        while not stop.is_set():
            more = spans(5, FIRST + timedelta(minutes=sent[0] * 7 % 9000), step=timedelta(minutes=11))
            exporter.export(more)
            sent[0] += 5
            time.sleep(0.05)

    command, mutated = store.command, []

    def noting_the_mutation(sql: str, *args: Any, **kwargs: Any) -> Any:
        if " UPDATE " in sql:
            mutated.append(store.query("SELECT now64(3)").result_rows[0][0])
        return command(sql, *args, **kwargs)

    store.command = noting_the_mutation  # type: ignore[method-assign]
    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        time.sleep(0.3)
        began = store.query("SELECT now64(3)").result_rows[0][0]
        report = Billing(store).reprice(start=FIRST, end=END, price_file=price_file, grace_seconds=2.0)
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join()
        store.command = command  # type: ignore[method-assign]
    assert exporter.force_flush(120_000)  # what waited in the spool goes in now, a spool segment per insert
    exporter.shutdown()
    assert report.verified is True and report.changed > 0
    count, distinct = store.query(
        f"SELECT count(), uniqExact(trace_id, span_id) FROM {store.database}.{RAW_TABLE}"
    ).result_rows[0]
    assert count == distinct == sent[0]  # nothing lost, nothing twice
    assert rollups_match_raw(store)
    rows = store.query(
        f"SELECT inserted_at, cost IS NULL FROM {store.database}.{RAW_TABLE} "
        "WHERE model = 'house-model-1' AND timestamp >= {s:DateTime64(6, 'UTC')} AND timestamp < {e:DateTime64(6, 'UTC')}",
        {"s": FIRST.strftime("%Y-%m-%d %H:%M:%S"), "e": END.strftime("%Y-%m-%d %H:%M:%S")},
    ).result_rows
    stored_before = [unpriced for at, unpriced in rows if at < began]
    assert stored_before and not any(stored_before)  # every call stored before it started is repriced
    assert any(unpriced for at, unpriced in rows if at >= began)  # the writer's later calls kept its own prices
    # the writer held its inserts from the lease on (a second for an insert already under way) to the rewrite
    held = store.query(
        f"SELECT count() FROM {store.database}.{RAW_TABLE} WHERE inserted_at > {{a:DateTime64(3, 'UTC')}} "
        "AND inserted_at < {b:DateTime64(3, 'UTC')}",
        {"a": began + timedelta(seconds=1), "b": mutated[0]},
    ).result_rows[0][0]
    assert len(mutated) == 1 and mutated[0] - began > timedelta(seconds=2) and held == 0


def test_reprice_from_the_command_line(tmp_path: Path, price_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    dsn = f"chdb://{tmp_path / 'store'}"
    seed = (
        "import sys\nfrom pathlib import Path\nfrom spanledger import Store\n"
        "from tests.integration.test_billing_reprice import spans\nfrom tests.integration.billing_support import store_calls\n"
        "store_calls(Store(sys.argv[1]), spans(90), Path(sys.argv[2]))\n"
    )
    subprocess.run([sys.executable, "-c", seed, dsn, str(tmp_path)], env=env, check=True, timeout=120)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "spanledger", "reprice", *args, "--store", dsn]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)

    window = ["--from", START.isoformat(), "--to", END.isoformat(), "--price-file", str(price_file)]
    dry = cli(*window, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would change" in dry.stdout and "Per tenant" in dry.stdout and "Dry run: nothing written." in dry.stdout
    dry_json = json.loads(cli(*window, "--dry-run", "--format", "json").stdout)
    real = cli(*window, "--format", "json")
    assert real.returncode == 0, real.stderr
    real_json = json.loads(real.stdout)
    timing = ("dry_run", "verified", "seconds", "phases")
    assert {k: v for k, v in dry_json.items() if k not in timing} == {
        k: v for k, v in real_json.items() if k not in timing
    }
    assert real_json["changed"] > 0 and real_json["verified"] is True
    second = json.loads(cli(*window, "--format", "json").stdout)
    assert second["changed"] == 0 and Decimal(second["difference"]) == 0 and second["days"] == []
    missing = cli("--from", "2026-11-01")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "--to" in missing.stderr
    backwards = cli("--from", "2026-11-02", "--to", "2026-11-01")
    assert backwards.returncode == 2 and "ends before it starts" in backwards.stderr


def test_a_repricing_that_fails_after_rewriting_still_leaves_the_rollups_equal_to_llm_calls(
    store: Store, tmp_path: Path, price_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spanledger import StoreError
    from spanledger._billing import store as billing_sql

    october = datetime(2026, 10, 25, tzinfo=UTC)
    store_calls(store, spans(120, october, step=timedelta(hours=3)), tmp_path)  # Oct 25 to Nov 8: two months
    real = billing_sql.apply_prices
    calls: list[int] = []

    def second_month_fails(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise StoreError("the server went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(billing_sql, "apply_prices", second_month_fails)
    with pytest.raises(StoreError, match="went away"):
        Billing(store).reprice(start=october, end=END, price_file=price_file, grace_seconds=0)
    assert len(calls) == 2 and rollups_match_raw(store)  # October was rewritten, and its rollups follow
    assert lease.held(store) is None
    monkeypatch.undo()
    again = Billing(store).reprice(start=october, end=END, price_file=price_file, grace_seconds=0)
    assert again.changed > 0 and {d[:7] for d in again.days} == {"2026-11"} and again.verified
    assert rollups_match_raw(store)
