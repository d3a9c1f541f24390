"""Q12: billing at scale — a month's statement for one tenant, and repricing a month, at 10M stored calls.

Data: 10M calls over 30 days (100k users in 1,000 tenants, seven models, one unpriced), bulk-loaded with
``Store.insert_calls`` through every materialized view from the shared generator (``_datagen.py``), then
``OPTIMIZE … FINAL`` (the merged steady state).

* **Statement**: ``Ledger.statement`` of the heaviest tenant over the 30 days (edges inside hours, as a
  real period's are not), without markups (read from the daily rollups) and with user and plan markups set
  (each call's markup labelled inside ClickHouse: the user rollups for user markups, ``llm_calls`` for plan
  tags, which the daily rollups do not keep). Baseline: the same lines — requests, tokens and
  cost per provider and model — from a GROUP BY over ``llm_calls``; every line is compared exactly.
* **Reprice**: ``reprice`` of the same 30 days with a price file that scales every catalog price (so every
  priced call changes; the unpriced model stays unpriced), in calls per second, end to end: read, price
  with the real ``Pricer``, rewrite by mutation, rebuild the rollups of the days touched. Each repeat
  uses another factor, so each rewrites every priced call. Baseline: a plain ``INSERT … SELECT`` of the
  same rows into a copy of ``llm_calls`` (no views), the floor of rewriting them. The dry run (read and
  price only) and the process's peak memory are reported too.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import Timer, emit, parse_args, round_robin, row, rss_bytes
from _datagen import DATA_END, Population, Templates, call_blocks
from spanledger import Ledger, Store
from spanledger._billing.billing import Billing
from spanledger._store.schema import RAW_TABLE, ROLLUP_TABLES

WINDOW_START = DATA_END - timedelta(days=30, minutes=-7)  # 7 minutes after the first call: edges inside hours
WINDOW_END = DATA_END


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where the store goes (default: a temp dir)")
    parser.add_argument("--calls", type=int, default=None, help="stored calls (default 10M; --quick 200k)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each measurement")


def baseline_lines(store: Store, tenant: str) -> dict[tuple[str, str], tuple[int, int, int, Any]]:
    params = {
        "s": WINDOW_START.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "e": WINDOW_END.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "t": tenant,
    }
    rows = store.query(
        f"SELECT provider, model, count(), sum(input_tokens), sum(output_tokens), sum(ifNull(cost, toDecimal64(0, 12))) "
        f"FROM {store.database}.{RAW_TABLE} WHERE tenant_id = {{t:String}} AND timestamp >= {{s:DateTime64(6, 'UTC')}} "
        "AND timestamp < {e:DateTime64(6, 'UTC')} GROUP BY provider, model",
        params,
    ).result_rows
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4]), r[5]) for r in rows}


def ours_lines(ledger: Ledger, tenant: str) -> dict[tuple[str, str], tuple[int, int, int, Any]]:
    st = ledger.statement(tenant, start=WINDOW_START, end=WINDOW_END)
    out: dict[tuple[str, str], list[Any]] = {}
    for line in st.lines:
        got = out.setdefault((line.provider, line.model), [0, 0, 0, 0])
        got[0] += line.requests
        got[1] += line.input_tokens
        got[2] += line.output_tokens
        got[3] += line.cost or 0
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}


class PeakRss:
    """The process's peak resident memory while the block runs (sampled every 50 ms)."""

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    total = args.calls or (200_000 if args.quick else 10_000_000)
    repeats = args.repeats or (2 if args.quick else 1)  # a full-size reprice takes minutes
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-bench-q12-"))
    store = Store(f"chdb://{workdir / 'chdb'}?database=q12")
    pop = Population(users=100_000 if not args.quick else 20_000, tenants=1_000 if not args.quick else 200)
    templates = Templates(np.random.default_rng(12))
    with Timer() as load:
        for cols in call_blocks(pop, templates, total, block=min(250_000, total), seed=1212):
            store.insert_calls(cols)
    with Timer() as optimize:
        for table in (RAW_TABLE, *ROLLUP_TABLES):
            store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    notes = [f"{total:,} calls loaded in {load.seconds:.0f} s, OPTIMIZE FINAL {optimize.seconds:.0f} s"]
    ledger = Ledger(store)
    tenant = pop.heavy_tenant()

    # --- statement -------------------------------------------------------------------------------------
    expected = baseline_lines(store, tenant)
    problems = [] if ours_lines(ledger, tenant) == expected else ["statement lines differ from the GROUP BY"]
    requests = sum(v[0] for v in expected.values())
    notes.append(f"statement of {tenant}: {requests:,} calls in the window, {len(expected)} models")

    def timed(fn: Any) -> Any:
        def run(_i: int) -> float:
            with Timer() as t:
                fn()
            return t.seconds

        return run

    stmt, base = round_robin(
        5,
        timed(lambda: ledger.statement(tenant, start=WINDOW_START, end=WINDOW_END)),
        timed(lambda: baseline_lines(store, tenant)),
    )
    rows = [
        row(
            "statement, heaviest tenant, 30 days, no markups",
            "s",
            stmt,
            base,
            [a / b for a, b in zip(stmt, base, strict=True)],
            ratio_meaning="ours / GROUP BY over llm_calls (lower is better)",
            target="documented",
            met=None,
        )
    ]
    billing = Billing(store)
    billing.set_markup("20", plan="pro")
    billing.set_markup("35", plan="enterprise")
    billing.set_markup("50", user=pop.top_user()[1])
    billing.set_markup("10")
    marked, base2 = round_robin(
        5,
        timed(lambda: ledger.statement(tenant, start=WINDOW_START, end=WINDOW_END)),
        timed(lambda: baseline_lines(store, tenant)),
    )
    if ours_lines(ledger, tenant) != expected:
        problems.append("statement lines with markups differ from the GROUP BY")
    rows.append(
        row(
            "statement, same, with plan and user markups (markup labelled in ClickHouse)",
            "s",
            marked,
            base2,
            [a / b for a, b in zip(marked, base2, strict=True)],
            ratio_meaning="ours / GROUP BY over llm_calls (lower is better)",
            target="documented",
            met=None,
        )
    )

    # --- reprice ---------------------------------------------------------------------------------------
    copy = f"{store.database}.llm_calls_copy"
    store.command(f"CREATE TABLE {copy} AS {store.database}.{RAW_TABLE}")
    factors = iter(f"1.{i + 1}" for i in range(100))

    def reprice_once(_i: int, *, dry: bool = False) -> float:
        path = workdir / f"prices-{_i}-{int(dry)}.toml"
        path.write_text(f'[[prices]]\nname = "scaled"\nprovider = "*"\nmodel = "*"\nmultiplier = "{next(factors)}"\n')
        with PeakRss() as rss, Timer() as t:
            report = billing.reprice(start=WINDOW_START, end=WINDOW_END, price_file=path, dry_run=dry, grace_seconds=0)
        peaks.append(rss.peak)
        reports.append(report)
        return report.calls / t.seconds

    def insert_select(_i: int) -> float:
        store.command(f"TRUNCATE TABLE {copy}")
        params = {"s": WINDOW_START.strftime("%Y-%m-%d %H:%M:%S.%f"), "e": WINDOW_END.strftime("%Y-%m-%d %H:%M:%S.%f")}
        with Timer() as t:
            store.command(
                f"INSERT INTO {copy} SELECT * FROM {store.database}.{RAW_TABLE} "
                "WHERE timestamp >= {s:DateTime64(6, 'UTC')} AND timestamp < {e:DateTime64(6, 'UTC')}",
                params,
            )
        n = int(store.query(f"SELECT count() FROM {copy}").result_rows[0][0])
        return n / t.seconds

    peaks: list[int] = []
    reports: list[Any] = []
    before = rss_bytes()
    dry = [reprice_once(i, dry=True) for i in range(1)]
    dry_report = reports[-1]
    real, base3 = round_robin(repeats, reprice_once, insert_select)
    real_reports = reports[1:]
    if any(r.verified is not True for r in real_reports):
        problems.append("a reprice was not verified against llm_calls")
    changed = [r.changed for r in real_reports]
    rows.append(
        row(
            "reprice, 30 days (every priced call rewritten), end to end",
            "calls/s",
            real,
            base3,
            [a / b for a, b in zip(real, base3, strict=True)],
            ratio_meaning="ours / plain INSERT … SELECT of the same rows into a copy (higher is better)",
            target="documented",
            met=None,
            changed=changed,
            seconds=[r.seconds for r in real_reports],
            phases=[r.phases for r in real_reports],
            peak_rss_mb=[p / 2**20 for p in peaks[1:]],
        )
    )
    rows.append(row("reprice --dry-run (read and price only)", "calls/s", dry, target="documented", met=None))
    notes.append(
        f"reprice: {dry_report.calls:,} calls looked at, {changed} rewritten per run, {dry_report.kept} kept; "
        f"process RSS {before / 2**20:.0f} MB before, peak {max(peaks) / 2**20:.0f} MB (chDB runs in-process)"
    )
    notes += problems
    emit(
        args,
        {
            "question": 12,
            "title": "Billing: a month's statement for one tenant, and repricing a month, at 10M calls",
            "baseline": "GROUP BY over llm_calls (statement); plain INSERT … SELECT of the same rows (reprice)",
            "target": "documented (issue 14)",
            "method": __doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
            "rows": rows,
            "notes": notes,
            "exact": not problems,
        },
    )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
